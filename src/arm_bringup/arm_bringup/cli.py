"""The `arm` command: the project's entry point on machines with only the ROS 2 wheels.

Examples:
    arm tasks
    arm demos --task reach_target --episodes 10 --seed 0 --out runs/demos
    arm demos --task pick_up_cup --episodes 5 --out runs/demos --image-size 64
    arm train --inprocess --task pick_up_cup --minutes 30 --out runs/cup
    arm evaluate runs/reach --all
    arm benchmark --tasks pick_up_cup,take_lid_off_saucepan --methods arm,sac,bc --minutes 120 --out runs/bench
    arm plot ARM=runs/reach SAC=runs/reach_sac --out runs/reach_vs_sac.png
    arm launch sim task:=pick_up_cup
    arm launch sim_train minutes:=30 run_dir:=runs/cup      # the main job: pick_up_cup
    arm launch sim_train --show-args
    arm topic list
    arm topic echo /joint_states --once
    arm topic hz /camera/front/color/image_raw
"""
from __future__ import annotations

import argparse
import json
import sys

from arm_distributed.settings import DistributedSettings
from arm_policy.config import AMP_CHOICES
from arm_policy.settings import BenchmarkSettings, TrainSettings
from arm_policy.settings_cli import add_options, from_options, parse_items


def _cmd_tasks(args) -> int:
    from arm_sim.tasks import QTOPT_TASK_NAMES, TASK_NAMES

    print("\n".join(TASK_NAMES))  # the keyframe tasks (ARM, SAC, BC), one per line
    print(f"(QT-Opt's closed-loop task: {', '.join(QTOPT_TASK_NAMES)}; arm train --inprocess "
          "--method qtopt --task grasp_bin)", file=sys.stderr)
    return 0


def _cmd_benchmark(args) -> int:
    from arm_policy.benchmark import run_benchmark
    from arm_policy.benchmark_report import write_report
    from arm_policy.training_run import stop_on_sigterm

    def log(line):
        print(line, file=sys.stderr, flush=True)

    if args.report:
        write_report(args.out, log)
        return 0
    stop_on_sigterm()
    try:
        settings = from_options(BenchmarkSettings, args)
    except ValueError as e:
        print(f"arm benchmark: {e}", file=sys.stderr)
        return 2
    try:
        run_benchmark(settings, log)
    except KeyboardInterrupt:
        return 130
    except ValueError as e:  # demos recorded another way
        print(f"arm benchmark: {e}", file=sys.stderr)
        return 2
    return 0


def _cmd_evaluate(args) -> int:
    from arm_policy.train_inprocess import evaluate_checkpoints

    if args.episodes < 1:
        print("arm evaluate: --episodes must be at least 1", file=sys.stderr)
        return 2
    if args.greedy_refine is not None and (args.greedy_refine < 2 or not args.greedy_refine_cm > 0):
        print(f"arm evaluate: --greedy-refine {args.greedy_refine} must be at least 2 and "
              f"--greedy-refine-cm {args.greedy_refine_cm} above 0", file=sys.stderr)
        return 2
    refine = None if args.greedy_refine is None else (args.greedy_refine, args.greedy_refine_cm)
    try:
        results = evaluate_checkpoints(args.run, args.episodes, args.all,
                                       log=lambda line: print(line, file=sys.stderr, flush=True),
                                       collision_checking=args.collision_checking, trace=args.trace,
                                       greedy_refine=refine)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"arm evaluate: {e}", file=sys.stderr)
        return 1
    for r in results:
        print(json.dumps(r))
    return 0 if results else 1


def _cmd_plot(args) -> int:
    from pathlib import Path

    from arm_policy.plots import plot_learning_curve
    from arm_policy.run_log import read_metrics

    curves = {}
    for run in args.runs:
        label, _, folder = run.rpartition("=") if "=" in run else (Path(run).name, "", run)
        try:
            # in-process runs log against env steps ("step"); sim_train has an env_steps column
            rows = [{**r, "env_steps": r.get("env_steps", r["step"])}
                    for r in read_metrics(folder) if "eval_success" in r]
        except FileNotFoundError:
            print(f"arm plot: {folder} has no metrics.csv (not a run folder?)", file=sys.stderr)
            return 1
        if not rows:
            print(f"arm plot: {folder} has no evaluation yet", file=sys.stderr)
            return 1
        curves[label] = rows
    (first, rows), *rest = curves.items()
    out = plot_learning_curve(rows, args.out, label=first, compare=dict(rest) or None,
                              title=args.title)
    print(out)
    return 0


def _cmd_demos(args) -> int:
    from arm_sim.demos import record_demos
    from arm_sim.environment import ExpertNoise
    from arm_sim.tasks import TASK_NAMES

    if args.task not in TASK_NAMES:
        print(f"arm demos: unknown task {args.task!r}. Valid tasks:", file=sys.stderr)
        print("\n".join(f"  {n}" for n in TASK_NAMES), file=sys.stderr)
        return 2
    if args.episodes < 1:
        print("arm demos: --episodes must be at least 1", file=sys.stderr)
        return 2
    if not 16 <= args.image_size <= 1024:
        print(f"arm demos: --image-size must be within 16..1024 pixels, got {args.image_size}", file=sys.stderr)
        return 2
    try:
        summary = record_demos(args.task, args.episodes, args.seed, args.out, args.image_size,
                               progress=lambda line: print(line, file=sys.stderr, flush=True),
                               noise=ExpertNoise(place_m=args.place_noise_cm / 100, grasp_m=args.grasp_noise_cm / 100))
    except (FileExistsError, ValueError) as e:
        print(f"arm demos: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


def _cmd_train(args) -> int:
    overrides = parse_items(args.agent_overrides or [], "--agent-overrides")
    if args.amp is not None:
        overrides["amp"] = args.amp
    try:
        settings = from_options(TrainSettings, args, agent_overrides=overrides,
                                **({"method": "sac"} if args.no_attention else {}))
        dist = from_options(DistributedSettings, args) if args.distributed else None
        if dist is not None:
            from arm_distributed.train import check_distributed

            check_distributed(settings, dist)
    except ValueError as error:
        print(f"arm train: {error}", file=sys.stderr)
        return 2
    try:
        from arm_policy.agents import resolve_device

        resolve_device(args.device)
    except (RuntimeError, ValueError) as error:
        print(f"arm train: {error}", file=sys.stderr)
        return 2

    def log(line):
        print(line, file=sys.stderr, flush=True)

    from arm_policy.training_run import stop_on_sigterm

    stop_on_sigterm()  # `kill` stops it as Ctrl-C does: a last checkpoint, resumable
    if dist is not None:
        from arm_distributed.train import train_distributed

        try:
            summary = train_distributed(settings, dist, log)
        except KeyboardInterrupt:
            return 130
    else:
        from arm_policy.train_inprocess import train

        try:
            summary = train(settings, log=log)
        except KeyboardInterrupt:  # summary.json says interrupted: true
            return 130
    print(json.dumps(summary))
    return 0


def _cmd_launch(args) -> int:
    import shlex

    from arm_bringup import launcher, nodes, run_config

    if args.name not in nodes.PRESETS:
        print(f"arm launch: unknown launch configuration {args.name!r}. Valid:", file=sys.stderr)
        print("\n".join(f"  {n}  {p.description}" for n, p in nodes.PRESETS.items()),
              file=sys.stderr)
        return launcher.EXIT_USAGE
    try:
        given = nodes.parse_arg_overrides(args.args)
        if args.show_args:
            print(nodes.describe_arguments(args.name, given.get("params_file") or None))
            return 0
        specs = nodes.resolve(args.name, given)
        # a launch with a run folder: one configuration, written there, read by every node
        specs = run_config.use_run_config(args.name, specs, write=not args.print_only)
    except (nodes.ArgumentError, ValueError) as err:
        print(f"arm launch: {err}", file=sys.stderr)
        return launcher.EXIT_USAGE
    if args.print_only:
        for spec in specs:
            try:
                argv = launcher.command_line(spec)
            except launcher.ExecutableNotFound:
                argv = launcher.command_line(spec, f"<missing: lib/{spec.package}/{spec.executable}>")
            print(f"{spec.name}: {shlex.join(argv)}")
        return 0
    return launcher.run(specs, sigint_timeout=args.sigint_timeout,
                        sigterm_timeout=args.sigterm_timeout)


def _cmd_topic_list(args) -> int:
    from arm_bringup import topic_tools

    return topic_tools.topic_list(show_types=args.show_types, spin_time=args.spin_time,
                                  include_hidden=args.include_hidden_topics)


def _cmd_topic_echo(args) -> int:
    from arm_bringup import topic_tools

    return topic_tools.topic_echo(
        args.topic, args.type, once=args.once, timeout=args.timeout,
        truncate_length=None if args.full_length else args.truncate_length,
        no_arr=args.no_arr, no_str=args.no_str, field=args.field,
        reliability=args.qos_reliability, durability=args.qos_durability)


def _cmd_topic_hz(args) -> int:
    from arm_bringup import topic_tools

    return topic_tools.topic_hz(args.topic, args.type, window=args.window, timeout=args.timeout,
                                duration=args.duration)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tasks", help="list the task names, one per line",
                       description="Examples:\n    arm tasks", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=_cmd_tasks)

    p = sub.add_parser("train", help="train on the simulator without ROS: in process, or on Ray",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=(
                           "Examples:\n"
                           "    arm train --inprocess --task pick_up_cup --minutes 120 --out runs/cup\n"
                           "    arm train --inprocess --task pick_up_cup --method bc --minutes 10 --out runs/cup_bc\n"
                           "    arm train --inprocess --task reach_target --method sac --demos 10 --out runs/reach_sac\n"
                           "    arm train --inprocess --task stack_wine --minutes 120 --final-eval-episodes 200 --out runs/wine\n"
                           "    arm train --inprocess --task pick_up_cup --device cuda --amp bf16 --out runs/cup_gpu\n"
                           "    arm train --inprocess --algo qtopt --task grasp_bin --minutes 60 --out runs/qt\n"
                           "    arm train --distributed --algo qtopt --task grasp_bin --collectors 2 --bellman-updaters 1 "
                           "--minutes 60 --out runs/qt_ray\n"
                           "    arm train --distributed --algo arm --task pick_up_cup --collectors 1 --bellman-updaters 1 "
                           "--minutes 60 --out runs/cup_ray\n"
                           "    arm train --distributed --algo qtopt --task grasp_bin --address auto --out runs/qt_cluster\n\n"
                           "--distributed runs the actors on Ray (arm_distributed; qtopt, arm or sac): a local Ray bound to 127.0.0.1\n"
                           "with token authentication, stopped at the end; --address joins a running cluster.\n"
                           "Records the demos into OUT/demos first, evaluates the untrained agent, then trains with\n"
                           "periodic evaluation (no exploration) until the time budget; OUT holds config.json,\n"
                           "checkpoints/, metrics.csv, tensorboard/, learning_curve.png, attention/ and summary.json\n"
                           "(untrained_success beside eval_success). The same command on an unfinished OUT resumes\n"
                           "it from its newest checkpoint, with the replay it had then (OUT/replay/ until the run\n"
                           "is over). Training over the ROS graph (training_node) is\n"
                           "`arm launch sim_train`, not this command."))
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--inprocess", action="store_true",
                       help="run simulator, agent and replay in this process")
    where.add_argument("--distributed", action="store_true",
                       help="run collectors, replay servers, Bellman updaters and the learner as Ray actors "
                            "(qtopt, arm or sac; a local Ray unless --address)")
    add_options(p, TrainSettings, required=("out",), aliases={"method": "--algo"})
    add_options(p.add_argument_group("distributed (with --distributed)"), DistributedSettings)
    p.add_argument("--no-attention", action="store_true", help="the same as --method sac")
    p.add_argument("--amp", choices=AMP_CHOICES, default=None,
                   help="bf16: forward passes under bfloat16 autocast (fp32 weights and losses); "
                        "auto: bf16 where the device computes bfloat16 natively (CUDA, AVX-512 BF16 "
                        "or AMX), else off; default: the preset's (cpu: auto, paper: off); "
                        "the same as --agent-overrides amp=VALUE")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("benchmark", help="the paper's Fig. 6: tasks x methods x seeds, resumable",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=(
                           "Examples:\n"
                           "    arm benchmark --tasks pick_up_cup,take_lid_off_saucepan --minutes 120 --out runs/bench\n"
                           "    arm benchmark --tasks all --methods arm,sac,bc --minutes 30 --seeds 2 --jobs 2 --out runs/bench\n"
                           "    arm benchmark --report --out runs/bench      # the report from the cells done so far\n\n"
                           "Trains every (task, method, seed) cell in process (`arm train --inprocess`, one run\n"
                           "folder each under OUT/cells), one after another or --jobs side by side with one torch\n"
                           "thread each, and writes OUT/results.csv, OUT/results.md (final success beside the\n"
                           "untrained agent's, the mean of the last evaluations, where it fails) and OUT/curves.png.\n"
                           "Resumable: run the same command again; finished cells are skipped and an interrupted\n"
                           "one resumes from its newest checkpoint."))
    add_options(p, BenchmarkSettings, required=("out",))
    p.add_argument("--report", action="store_true", help="only rewrite the report from the finished cells")
    p.set_defaults(func=_cmd_benchmark)

    p = sub.add_parser("evaluate", help="evaluate a run's checkpoints in-process, saying what failed",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=(
                           "Examples:\n"
                           "    arm evaluate runs/reach\n"
                           "    arm evaluate runs/sim_train-20261202-001500 --episodes 10\n"
                           "    arm evaluate runs/reach --all        # every kept checkpoint: where did it decay?\n"
                           "    arm evaluate runs/bench/cells/phone_on_base/arm/seed_0 --no-collision-checking\n"
                           "    arm evaluate runs/bench/cells/pick_up_cup/arm/seed_0 --episodes 5 --trace\n"
                           "    arm evaluate runs/bench/cells/stack_wine/arm/seed_0 --all --greedy-refine 64\n\n"
                           "Runs the evaluation scenes of training (fixed seeds, no exploration) on the\n"
                           "in-process simulator. Per episode (stderr): the outcome, how far the attended pixel\n"
                           "was from the scripted expert's first keyframe, how far the first pose was from it,\n"
                           "how many later decisions on the expert's path attended to its next keyframe, and\n"
                           "the first grasp against the expert's. With --trace, every decision too: the\n"
                           "attended pixel, its 3-D point and its Q, the pose, the hand, the outcome.\n"
                           "One JSON line per checkpoint on stdout (eval_success, attention on keyframe,\n"
                           "median errors, unexecutable fraction)."))
    p.add_argument("run", help="run folder of `arm train --inprocess` or `arm launch sim_train`")
    p.add_argument("--episodes", type=int, default=25, help="evaluation scenes (default 25)")
    p.add_argument("--all", action="store_true", help="every kept checkpoint, oldest first (default: newest)")
    p.add_argument("--collision-checking", action=argparse.BooleanOptionalAction, default=None,
                   help="the action mode to evaluate in (default: the run's own); "
                        "--no-collision-checking is the ARM authors' RLBench mode")
    p.add_argument("--trace", action="store_true",
                   help="also one line per decision (stderr): where it attended, the pose, the outcome")
    p.add_argument("--greedy-refine", type=int, default=None, metavar="K",
                   help="decide with ARMConfig.greedy_refine_samples=K instead of the run's own: of the "
                        "actor's pose and K-1 moved from it, the one the critic values most (ARM, SAC)")
    p.add_argument("--greedy-refine-cm", type=float, default=1.0, metavar="CM",
                   help="with --greedy-refine: the offsets' spread per axis (default 1.0)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("plot", help="evaluation success vs env steps of several runs in one PNG",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=(
                           "Examples:\n"
                           "    arm plot ARM=runs/reach SAC=runs/reach_sac --out runs/reach_vs_sac.png\n"
                           "    arm plot runs/reach runs/sim_train-20261202-001500 --out /tmp/paths.png\n\n"
                           "Each RUN is a run folder (`arm train --inprocess` or `arm launch sim_train`), optionally\n"
                           "LABEL=RUN; the legend uses the label or the folder's name."))
    p.add_argument("runs", nargs="+", metavar="[LABEL=]RUN", help="run folders to draw")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--title", default="evaluation success vs env steps", help="plot title")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("demos", help="record scripted expert demonstrations as rosbag2 (MCAP)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=(
                           "Examples:\n"
                           "    arm demos --task reach_target --episodes 10 --seed 0 --out runs/demos\n"
                           "    arm demos --task stack_wine --episodes 3 --out /tmp/demos --image-size 64\n\n"
                           "Writes OUT/TASK/seed_NNNNNN/ (one rosbag2 MCAP bag per episode, 20 Hz frames), "
                           "progress on stderr, and one JSON line on stdout at the end."))
    p.add_argument("--task", required=True, help="task name (see `arm tasks`)")
    p.add_argument("--episodes", type=int, default=10, help="number of episodes (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode i uses seed+i")
    p.add_argument("--out", required=True, help="output directory; bags go to OUT/TASK/")
    p.add_argument("--image-size", type=int, default=128, help="camera width and height in pixels (default 128)")
    p.add_argument("--place-noise-cm", type=float, default=0.0,
                   help="move the expert's pose before each release off in x and y by this std (at most "
                        "twice it), the release itself where the exact expert's is, so the demos show how to "
                        "place from a carry that ended off (default 0: the exact expert)")
    p.add_argument("--grasp-noise-cm", type=float, default=0.0,
                   help="move the expert's grasp across the fingers by this std (at most twice it), each release "
                        "then placing the object, not the hand, where the exact expert's would, so the demos "
                        "show a release that makes up for an off-centre grasp (default 0: the exact expert)")
    p.set_defaults(func=_cmd_demos)

    raw = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("launch", help="run a launch configuration (sim, real): each node its own process",
                       formatter_class=raw, description=(
                           "Examples:\n"
                           "    arm launch sim\n"
                           "    arm launch sim task:=pick_up_cup image_size:=64 real_time:=false\n"
                           "    arm launch real params_file:=my_cell.yaml velocity_scaling:=0.1\n"
                           "    arm launch sim --show-args\n"
                           "    arm launch sim control_node.planner:=PRM --print\n\n"
                           "The same node list as `ros2 launch arm_bringup NAME.launch.py` (arm_bringup.nodes), "
                           "parameters from config/NAME.yaml; an argument you give overrides the values it names. "
                           "Output lines are prefixed with [node]. Ctrl-C, or the exit of any node, stops all "
                           "nodes (SIGINT, then SIGTERM, then SIGKILL). Exit code: 0 clean stop; 10+i node i "
                           "(0-based, in the order of --print) failed; 2 bad arguments or missing executables."))
    p.add_argument("name", help="launch configuration: sim, real, sim_train or sim_train_qtopt "
                                 "(sim_train algo:=qtopt is the last)")
    p.add_argument("args", nargs="*", metavar="arg:=value", help="launch arguments (see --show-args)")
    p.add_argument("--show-args", "-s", action="store_true", help="list the arguments with their defaults")
    p.add_argument("--print", dest="print_only", action="store_true",
                   help="print each node's command line instead of running it")
    p.add_argument("--sigint-timeout", type=float, default=5.0,
                   help="seconds nodes get to stop after SIGINT before SIGTERM (default 5)")
    p.add_argument("--sigterm-timeout", type=float, default=5.0,
                   help="seconds after SIGTERM before SIGKILL (default 5)")
    p.set_defaults(func=_cmd_launch)

    p = sub.add_parser("topic", help="list, echo and measure topics (ros2 topic without ros2cli)",
                       formatter_class=raw, description=(
                           "Examples:\n"
                           "    arm topic list -t\n"
                           "    arm topic echo /joint_states --once\n"
                           "    arm topic hz /camera/front/color/image_raw"))
    tsub = p.add_subparsers(dest="topic_command", required=True)

    t = tsub.add_parser("list", help="list the topics of the graph", formatter_class=raw, description=(
        "Examples:\n"
        "    arm topic list\n"
        "    arm topic list -t\n\n"
        "Listens for discovery (at least --spin-time seconds, until another node has appeared and nothing "
        "new for 0.5 s), then prints one topic per line. Fast DDS finds a running process in ~0.15 s, "
        "but when its first announcements are missed only at the next periodic one (every 3 s): for a "
        "complete list of a big graph use --spin-time 3."))
    t.add_argument("-t", "--show-types", action="store_true", help="print each topic's type too")
    t.add_argument("--spin-time", type=float, default=0.5,
                   help="listen at least this long for discovery, then until the graph is quiet for 0.5 s (default 0.5)")
    t.add_argument("--include-hidden-topics", action="store_true", help="also topics with a _hidden part")
    t.set_defaults(func=_cmd_topic_list)

    t = tsub.add_parser("echo", help="print messages of a topic as YAML", formatter_class=raw, description=(
        "Examples:\n"
        "    arm topic echo /joint_states --once\n"
        "    arm topic echo /camera/front/color/camera_info --once --field k\n"
        "    arm topic echo /camera/front/color/image_raw --no-arr\n"
        "    arm topic echo /arm/task/success std_msgs/msg/Bool --timeout 30\n\n"
        "Like `ros2 topic echo`: YAML per message, '---' after each, arrays and strings longer than "
        "--truncate-length cut with '...'. The QoS matches the publishers (reliable / transient-local "
        "only if all of them are), so latched topics print their last message too. Exit code 1 if the "
        "topic does not appear (with --once: no message arrives) within --timeout seconds."))
    t.add_argument("topic", help="topic name")
    t.add_argument("type", nargs="?", help="message type, e.g. std_msgs/msg/String (default: from the graph)")
    t.add_argument("--once", action="store_true", help="print one message and exit")
    t.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for the topic (and with --once for a message); 0: forever (default 10)")
    t.add_argument("--truncate-length", "-l", type=int, default=128,
                   help="cut arrays and strings longer than this (default 128)")
    t.add_argument("--full-length", "-f", action="store_true", help="never cut arrays or strings")
    t.add_argument("--no-arr", action="store_true", help="print arrays as their type and length only")
    t.add_argument("--no-str", action="store_true", help="print strings as their length only")
    t.add_argument("--field", help="print only this field, e.g. header.stamp")
    t.add_argument("--qos-reliability", choices=["reliable", "best_effort"], help="override the QoS choice")
    t.add_argument("--qos-durability", choices=["volatile", "transient_local"], help="override the QoS choice")
    t.set_defaults(func=_cmd_topic_echo)

    t = tsub.add_parser("hz", help="print the publishing rate of a topic", formatter_class=raw, description=(
        "Examples:\n"
        "    arm topic hz /camera/front/color/image_raw\n"
        "    arm topic hz /joint_states --window 100 --duration 5\n\n"
        "Prints 'average rate: X' and min/max/std dev of the intervals every second, over the last "
        "--window intervals; messages are not deserialized. Runs until Ctrl-C or --duration seconds."))
    t.add_argument("topic", help="topic name")
    t.add_argument("type", nargs="?", help="message type (default: from the graph)")
    t.add_argument("--window", "-w", type=int, default=10000, help="intervals the statistics cover (default 10000)")
    t.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the topic; 0: forever (default 10)")
    t.add_argument("--duration", type=float, help="stop after this many seconds (exit 1 if no rate was measured)")
    t.set_defaults(func=_cmd_topic_hz)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # `arm launch sim --print task:=x`: argparse stops collecting positionals at an option.
        if getattr(args, "command", None) == "launch" and all(":=" in e for e in extra):
            args.args = [*args.args, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
