"""Operations: assembling and running modes (the kernel); the daemon, scheduler and
alerts come here too. Imports point down to every other layer but the interfaces."""

from tradewarden.ops.kernel import Handlers, Kernel, ReplayFeed, assemble, run_replay

__all__ = ["Handlers", "Kernel", "ReplayFeed", "assemble", "run_replay"]
