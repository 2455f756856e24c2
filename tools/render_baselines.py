"""Render policy/patch-policy.yaml into template.yaml (only between the generated-block markers).

The committed exclusion ledger (policy/exclusions.yaml, written by `patchpilot exclusions export`) is part of the
input: its entries join the baselines' RejectedPatches, so run-time exclusions survive the next deploy.

Usage: ``.venv/bin/python tools/render_baselines.py [--check]`` or ``make baselines``.
``--check`` changes nothing and exits 1 when the template is out of sync with the policy.
"""

import argparse
import sys

from patchpilot_cli.policy_render import (
    TEMPLATE_PATH,
    PolicyError,
    generated_section,
    load_policy,
    render_block,
    write_template,
)


def main(argv: list[str] | None = None) -> int:
    """Validate the policy, then rewrite (or with --check, compare) the generated section of template.yaml."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if template.yaml is out of sync; write nothing")
    args = parser.parse_args(argv)
    try:
        policy = load_policy()
        if args.check:
            in_sync = generated_section(TEMPLATE_PATH.read_text()) == render_block(policy)
            print(
                "template.yaml is in sync with the policy"
                if in_sync
                else "template.yaml is OUT OF SYNC with the policy or the exclusion ledger: make baselines"
            )
            return 0 if in_sync else 1
        changed = write_template(policy)
    except PolicyError as error:
        print(error, file=sys.stderr)
        return 2
    print("template.yaml updated from the policy" if changed else "template.yaml already matches the policy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
