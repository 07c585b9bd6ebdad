"""How a flow's port counts in the daily endpoint rollups: as is, or folded into OTHER_PORT or NO_PORT.

The subscriber's own port of a connection it opened (the destination port of a downlink flow, the source port
of an uplink flow) from FIRST_EPHEMERAL_PORT up is ephemeral, one per connection, and keeping each would add a
rollup row per flow: those count together under OTHER_PORT. A flow without a port counts under NO_PORT.
"""

from django.db.models import Case, F, IntegerField, Value, When

OTHER_PORT = -1
NO_PORT = -2
FIRST_EPHEMERAL_PORT = 1024


def folded(port, folds):
    """The port under which one end of a flow counts; folds: the end is the subscriber's (see fold_direction)."""
    if port is None:
        return NO_PORT
    return OTHER_PORT if folds and port >= FIRST_EPHEMERAL_PORT else port


def may_be_folded(port):
    """True when flows on this port may count under OTHER_PORT instead (on the subscriber's own end)."""
    return port >= FIRST_EPHEMERAL_PORT


def folded_expression(port_field, **folds):
    """folded() in SQL, for grouping stored flows; folds: the filter of the flows whose end is the subscriber's."""
    return Case(
        When(**{f"{port_field}__isnull": True}, then=Value(NO_PORT)),
        When(**folds, **{f"{port_field}__gte": FIRST_EPHEMERAL_PORT}, then=Value(OTHER_PORT)),
        default=F(port_field), output_field=IntegerField(),
    )
