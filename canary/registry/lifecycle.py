"""A canary's status over its life, as rules the Registry applies.

    planned --mark_planted--> planted <--verify--> missing
       |                         |                    |
       +---------> retired <-----+--------------------+

``retired`` is final: the rows are gone from the target on purpose (or never
got there). Its tokens stay reserved, since the record may already have leaked.
"""

from __future__ import annotations

from canary.errors import CanaryError
from canary.model import CanaryStatus, VerifyState

LIVE = (CanaryStatus.PLANNED, CanaryStatus.PLANTED, CanaryStatus.MISSING)

# Moves allowed through Registry.set_status. PLANNED -> PLANTED is not among
# them: it needs a placement, given to Registry.mark_planted.
_NEXT_STATUS = {
    CanaryStatus.PLANNED: {CanaryStatus.RETIRED},
    CanaryStatus.PLANTED: {CanaryStatus.MISSING, CanaryStatus.RETIRED},
    CanaryStatus.MISSING: {CanaryStatus.PLANTED, CanaryStatus.RETIRED},
    CanaryStatus.RETIRED: set(),
}


def check_move(canary_id: int, current: CanaryStatus, wanted: CanaryStatus) -> None:
    """Raise CanaryError unless ``set_status`` may move a canary from current to wanted."""
    if wanted is current or wanted in _NEXT_STATUS[current]:
        return
    hint = ": use mark_planted with its placement" if current is CanaryStatus.PLANNED else ""
    raise CanaryError(
        f"canary #{canary_id} is {current.value}: it cannot become {wanted.value}{hint}"
    )


def status_after_verify(current: CanaryStatus, state: VerifyState) -> CanaryStatus:
    """Only placed, live canaries follow verify: a retired one is meant to be gone."""
    if current is CanaryStatus.PLANTED and state is not VerifyState.OK:
        return CanaryStatus.MISSING
    if current is CanaryStatus.MISSING and state is VerifyState.OK:
        return CanaryStatus.PLANTED
    return current
