"""Agent layer: reasoning, the graduated-autonomy governor, memory and learning.

Modules (imported by name; this package imports none of them, so the engine's
``agent.governor`` stays light):

* :mod:`~tradewarden.agent.governor`: the engine's governor protocol answers
  (``Authorization``) and the fixed governors (autonomous, monitor, approval).
* :mod:`~tradewarden.agent.reasoning`: ``ReasoningEngine`` protocol, ``DecisionOutput``,
  ``ReasoningEvent``, ``ReasoningContext``, the deterministic ``RulesReasoner``.
* :mod:`~tradewarden.agent.autonomy`: ``AutonomySettings`` (the ``[autonomy]`` section) and
  ``AutonomyGovernor`` (levels L1-L4, mandatory-human triggers, promotion and demotion).
* :mod:`~tradewarden.agent.records`: the ledger records of decisions, verdicts, autonomy
  changes, anomalies and reasoning costs.
"""
