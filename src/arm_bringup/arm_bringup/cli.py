"""The arm command line."""


def main():
    raise SystemExit("not yet")
