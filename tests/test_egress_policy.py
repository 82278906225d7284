"""Which resolved addresses the egress checks let through (app/core/channels.address_refusal).

The running-service tests (tests/test_egress.py) show the checks are applied on every hop;
these pin the policy itself: an address inside the network is fetched only where the
allowlist names it, by address or by the host name that resolved to it.
"""

from __future__ import annotations

import pytest

from app.core.channels import address_refusal

ALIAS = "https://conda.anaconda.org"
ALLOWED = ["conda-forge", "https://mirror.lab.internal/conda", "http://127.0.0.1:9000/ch"]


@pytest.mark.parametrize(
    "host, addresses, refused",
    [
        ("mirror.lab.internal", ["10.1.2.3"], False),  # a lab mirror listed by its name
        ("mirror.lab.internal", ["169.254.169.254"], True),  # never metadata by name
        ("127.0.0.1", ["127.0.0.1"], False),  # listed by address
        ("evil.example", ["10.1.2.3"], True),  # a name nobody listed, resolving inside
        ("evil.example", ["127.0.0.2"], True),  # loopback, but not the listed address
        ("evil.example", ["93.184.216.34"], False),  # public: the URL checks decide
        ("conda.anaconda.org", ["104.17.92.24"], False),
    ],
)
def test_private_addresses_need_the_allowlist_to_name_them(
    host: str, addresses: list[str], refused: bool
) -> None:
    reason = address_refusal(host, addresses, ALLOWED, ALIAS)
    assert (reason is not None) is refused, reason
    if refused:
        assert host in reason and "CONDARCHIVE_ALLOWED_CHANNELS" in reason
