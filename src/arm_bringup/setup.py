import os
from glob import glob

from setuptools import find_packages, setup

package_name = "arm_bringup"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        *[(os.path.join("share", package_name, d), [f for f in glob(os.path.join(d, "*")) if os.path.isfile(f)])
          for d in ("launch", "config") if os.path.isdir(d)],
    ],
    package_data={package_name: ["assets/*"]},
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="ARM ROS team",
    maintainer_email="dev@arm-ros.example",
    description="Launch files, parameters, launcher, recorder, episode runner and the arm CLI.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "arm = arm_bringup.cli:main",
            "recorder = arm_bringup.recorder:main",
            "episode_runner = arm_bringup.episode_runner:main",
        ],
    },
)
