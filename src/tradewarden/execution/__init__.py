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
    check_transition,
    make_order_id,
)
from tradewarden.execution.sim import SimBroker

__all__ = ["TRANSITIONS", "Broker", "BrokerCapabilities", "IllegalTransition", "OrderEvent",
           "OrderEventKind", "SimBroker", "check_transition", "make_order_id"]
