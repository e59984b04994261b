"""Standing instructions: work a person sets up in words to happen later, safely.

Four kinds: a delayed action ("tomorrow at 9, post ..."), a recurring one ("every Monday at 8
send me the overdue invoices"), a watch on records ("if the Orchid deal hasn't moved by Friday,
ping me", "when SUP-17 is closed, tell the account owner", "if an invoice goes overdue, ...")
and a follow-up chained to another action ("after the credit note is issued, open a FIN task").

- :mod:`.triggers` reads the trigger clause (schedules, times, conditions) deterministically;
- :mod:`.setup` turns a message into an instruction, checked now as the person, and lists,
  changes and cancels them;
- :mod:`.store` keeps instructions and firings in the state database;
- :mod:`.runner` fires what is due, once, as the creator, checked again when it fires.
"""

from .runner import Runner, notification
from .setup import Standing
from .store import Instruction, InstructionBook, UnknownInstruction

__all__ = ["Instruction", "InstructionBook", "Runner", "Standing", "UnknownInstruction", "notification"]
