from setuptools import find_packages, setup

package_name = "arm_distributed"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="ARM ROS team",
    maintainer_email="dev@arm-ros.example",
    description="Training on Ray (no ROS): collectors, replay servers, Bellman updaters and one learner.",
    license="Apache-2.0",
)
