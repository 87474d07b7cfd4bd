"""Where stack_wine's releases land, from an `arm evaluate --trace` file.

    arm evaluate RUN --episodes 25 --trace 2> trace.txt
    python docs/benchmark/place_noise/release_errors.py trace.txt

Per scene that reached the carry's end (expert keyframe 3) and then opened the hand on the
release's pixel (keyframe 4): the horizontal distance of both poses from the expert's, the shift
from the one to the other, and how the episode ended. The seat takes 2 cm; a release that only
copies the carry's end keeps the carry's error.
"""
import math
import re
import statistics
import sys

STEP = re.compile(r"scene\s+(\d+) step \d+: .*?\[expert keyframe (\d+) at [^\]]*?(, off its path)?\] -> "
                  r"pose \(([-\d.]+), ([-\d.]+), [-\d.]+\) m \([\d.]+ cm from the keyframe's: ([-+\d.]+), "
                  r"([-+\d.]+), [-+\d.]+\), (open|close)")
END = re.compile(r"scene\s+(\d+): (.+?)\s+attention\s")


def main(path: str) -> None:
    carry, release, outcome = {}, {}, {}
    for line in open(path):
        if (m := STEP.search(line)) and not m.group(3):
            scene, keyframe, hand = int(m.group(1)), int(m.group(2)), m.group(8)
            pose = (float(m.group(4)), float(m.group(5)))
            error = math.hypot(float(m.group(6)), float(m.group(7)))
            if keyframe == 3 and hand == "close":
                carry.setdefault(scene, (pose, error))
            elif keyframe == 4 and hand == "open":
                release.setdefault(scene, (pose, error))
        elif m := END.search(line):
            outcome[int(m.group(1))] = m.group(2)
    rows = [(s, carry[s], release[s], outcome.get(s, "?")) for s in sorted(release) if s in carry]
    print("scene  carry's end off (cm)  release off (cm)  shift carry->release (cm)  outcome")
    for s, (cp, ce), (rp, re_), out in rows:
        print(f"{s:5d}  {ce:20.1f}  {re_:16.1f}  {100 * math.dist(cp, rp):25.1f}  {out}")
    for label, pick in (("success", lambda o: o == "success"), ("failed", lambda o: o != "success")):
        errors = sorted(r[2][1] for r in rows if pick(r[3]))
        if errors:
            print(f"release off, {label}: median {statistics.median(errors):.1f} cm, "
                  f"{' '.join(f'{e:.1f}' for e in errors)}")
    shifts = [100 * math.dist(r[1][0], r[2][0]) for r in rows]
    if shifts:
        print(f"shift carry -> release: median {statistics.median(shifts):.1f} cm over {len(rows)} scenes")


if __name__ == "__main__":
    main(sys.argv[1])
