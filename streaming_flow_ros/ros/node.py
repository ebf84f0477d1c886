"""Policy node (under construction)."""


def main(argv=None) -> int:
    raise SystemExit("policy_node: under construction")
