#!/usr/bin/env bash
# The A/B benchmark harness (kernel vs usertcp, alternating); the work is in scripts/ab.py, see its header.
# Example: sudo scripts/ab.sh --rounds 3 --seconds 3
exec python3 "$(dirname "$0")/ab.py" "$@"
