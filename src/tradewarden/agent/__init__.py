"""Agent layer: reasoning, the graduated-autonomy governor, memory and learning."""
