"""`Accept` header negotiation between the HTML page and the JSON of one resource.

Browsers ask for text/html first; curl sends `*/*` and gets HTML too (what a person
typing a permalink expects); API clients that say `application/json` get JSON.
"""

from __future__ import annotations

from fastapi import Request


def _quality(accept: str, media_type: str) -> tuple[float, int]:
    """(q-value, specificity) `accept` gives `media_type`; an exact match beats type/* and */*."""
    best, best_rank = 0.0, -1
    major = media_type.split("/", 1)[0]
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        pattern = parts[0].lower()
        rank = {media_type: 2, f"{major}/*": 1, "*/*": 0}.get(pattern, -1)
        if rank <= best_rank:
            continue
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best, best_rank = q, rank
    return best, best_rank


def prefers_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    if not accept:
        return False
    json_q = _quality(accept, "application/json")
    return json_q[0] > 0 and json_q > _quality(accept, "text/html")
