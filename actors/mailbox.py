"""The actor mailbox: a lean two-lane inbox plugged into Pykka's runtime.

Pykka's default inbox is a ``queue.Queue``: every ``put`` takes a lock and
notifies a condition, and every ``get`` does the same, so sender and actor
fight over one mutex per message. This mailbox keeps two ``collections.deque``
lanes (appends and pops are atomic under CPython) and only wakes the actor's
thread when it is actually asleep:

* the **control lane** (supervisor directives, stop, kill) is always served
  first, so control overtakes queued user messages;
* the **user lane** is served in FIFO order unless the mailbox is *held*:
  while a failed actor waits for its supervisor's decision (and any backoff),
  user messages stay queued, in order, and are handled after the restart.

Any thread may ``put``; only the actor's own thread calls ``get``. The
``sleeping`` flag and ``processed`` counter let ``system.settle()`` tell that
the actor has nothing it can do right now.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from regisseur.actors._pykka import ActorStop as _ActorStop

if TYPE_CHECKING:
    from collections.abc import Callable

    from regisseur.actors._pykka import Envelope

__all__ = ["ControlMessage", "Mailbox"]


class ControlMessage:
    """Base class of runtime messages that overtake user messages."""

    __slots__ = ()


class Mailbox:
    """Two-lane mailbox with hold/release; many producers, one consumer."""

    __slots__ = (
        "_closed",
        "_control",
        "_dead",
        "_held",
        "_user",
        "_wake",
        "on_sleep",
        "processed",
        "sleeping",
    )

    def __init__(self) -> None:
        self._user: deque[Envelope[Any]] = deque()
        self._control: deque[Envelope[Any]] = deque()
        self._wake = threading.Lock()
        self._wake.acquire()  # locked means "no wake-up pending"
        self._held = True  # nothing is delivered until the actor has started
        self.sleeping = False
        self.processed = 0
        self._closed = False
        self._dead: Callable[[Envelope[Any]], None] | None = None
        self.on_sleep: Callable[[], None] | None = None

    # -- producers (any thread) -------------------------------------------
    def put(self, envelope: Envelope[Any], /) -> None:
        """Queue an envelope; control messages go to the priority lane."""
        message = envelope.message
        if isinstance(message, (ControlMessage, _ActorStop)):
            self._control.append(envelope)
        else:
            self._user.append(envelope)
        if self._closed:
            # The actor stopped while we appended: hand back whatever is
            # left so nothing is silently lost (each envelope exactly once).
            self._drain_dead()
        elif self.sleeping:
            self._signal()

    def _signal(self) -> None:
        # Releasing an already released lock raises RuntimeError: a wake-up
        # is then already pending, which is exactly what we want.
        try:
            self._wake.release()
        except RuntimeError:
            return

    # -- consumer (the actor's thread only) -------------------------------
    def get(self) -> Envelope[Any]:
        """Block until a deliverable envelope is there and return it."""
        control, user = self._control, self._user
        while True:
            if control:
                self.processed += 1
                return control.popleft()
            if user and not self._held:
                self.processed += 1
                return user.popleft()
            self.sleeping = True
            # Re-check after announcing sleep: a producer that appended before
            # seeing ``sleeping`` is caught here, one that appends after it
            # will signal.
            if control or (user and not self._held):
                self.sleeping = False
                continue
            if self.on_sleep is not None:
                self.on_sleep()
            self._wake.acquire()
            self.sleeping = False

    def take_user(self) -> Envelope[Any] | None:
        """The next user envelope if one is deliverable now and no control waits, else None.

        Never blocks; the actor's thread only. What it returns is never a
        control message (``put`` sorts those into the other lane).
        """
        if self._control or self._held or not self._user:
            return None
        self.processed += 1
        return self._user.popleft()

    def empty(self) -> bool:
        """True when neither lane holds anything (Pykka's inbox protocol)."""
        return not self._control and not self._user

    def hold(self) -> None:
        """Stop delivering user messages (they stay queued, in order)."""
        self._held = True

    def release(self) -> None:
        """Deliver user messages again. Called on the actor's own thread."""
        self._held = False

    @property
    def held(self) -> bool:
        """True while user messages are kept back."""
        return self._held

    def runnable(self) -> bool:
        """True if ``get`` would return something right now."""
        return bool(self._control) or (bool(self._user) and not self._held)

    def idle(self) -> bool:
        """True if the consumer is asleep with nothing deliverable."""
        return self.sleeping and not self.runnable()

    def close(self, dead: Callable[[Envelope[Any]], None]) -> None:
        """Stop for good: every queued and later envelope goes to ``dead``.

        ``dead`` runs on whichever thread finds the envelope (the closer or a
        late producer) and must not block; it answers asks with an error and
        publishes tells as dead letters.
        """
        self._dead = dead
        self._closed = True
        self._held = True
        self._drain_dead()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _drain_dead(self) -> None:
        dead = self._dead
        assert dead is not None
        for lane in (self._control, self._user):
            while lane:
                try:
                    envelope = lane.popleft()
                except IndexError:  # another thread took the last one
                    break
                dead(envelope)

    def __len__(self) -> int:
        return len(self._control) + len(self._user)
