"""One line on stderr for an error the user can act on, screened for identity codes."""
from __future__ import annotations

import sys

from pseudonymize.redact import redact


def fail(message: str, code: int = 2) -> int:
    """Print ``tyokyky: <message>`` on one line (codes redacted) and return the exit code."""
    print(f"tyokyky: {redact(' '.join(str(message).split()))}", file=sys.stderr)
    return code
