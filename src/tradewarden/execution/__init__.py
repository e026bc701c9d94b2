"""Execution: the broker port (:mod:`.base`) and the simulated broker (:mod:`.sim`).

Exchange adapters implement :class:`Broker` and plug in here.
"""

from tradewarden.execution.base import (
    TRANSITIONS,
    Broker,
    BrokerCapabilities,
    IllegalTransition,
    OrderEvent,
    OrderEventKind,
    VenueAccount,
    VenueOrder,
    check_transition,
    make_order_id,
)
from tradewarden.execution.sim import SimBroker

__all__ = ["TRANSITIONS", "Broker", "BrokerCapabilities", "IllegalTransition", "OrderEvent",
           "OrderEventKind", "SimBroker", "VenueAccount", "VenueOrder", "check_transition",
           "make_order_id"]
