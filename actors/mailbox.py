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
  A ``tell`` queues the bare message (no envelope to build: it is most of
  a tell's cost); an ask, or anything ``put`` as an envelope, is queued as
  its ``Envelope``. A bare message that is itself an ``Envelope`` is
  wrapped in one, so the consumer tells the two apart by type alone.

Any thread may ``put``; only the actor's own thread calls ``get``. The
``sleeping`` flag and ``processed`` counter let ``system.settle()`` tell that
the actor has nothing it can do right now.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from regisseur.actors._pykka import ActorStop as _ActorStop
from regisseur.actors._pykka import Envelope

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ControlMessage", "Mailbox", "NoDeadLetter"]


class ControlMessage:
    """Base class of runtime messages that overtake user messages."""

    __slots__ = ()


class NoDeadLetter:
    """Base class of messages whose loss at a stopped actor loses nothing.

    The recipient's successor gets the same again another way: a nudge to
    look for work it will look for when it starts anyway, or a copy of what
    the sender still owns and hands over again when asked (the download
    keeper's records to a source's queue, which asks at each start). Such a
    message that reaches a stopped actor, or is still in its mailbox when
    it stops, is dropped without a ``DeadLetter``.
    """

    __slots__ = ()


class Mailbox:
    """Two-lane mailbox with hold/release; many producers, one consumer."""

    __slots__ = (
        "_closed",
        "_control",
        "_dead",
        "_user",
        "_wake",
        "held",
        "on_sleep",
        "processed",
        "sleeping",
    )

    def __init__(self) -> None:
        self._user: deque[Any] = deque()  # bare messages (tells) and envelopes
        self._control: deque[Envelope[Any]] = deque()
        self._wake = threading.Lock()
        self._wake.acquire()  # locked means "no wake-up pending"
        # True: user messages are kept back (read it, change it with hold/release).
        self.held = True  # nothing is delivered until the actor has started
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
            if self._closed:
                self._drain_dead()
            elif self.sleeping:
                self._signal()
            return
        self._user.append(envelope)
        if self._closed:
            # The actor stopped while we appended: hand back whatever is
            # left so nothing is silently lost (each envelope exactly once).
            self._drain_dead()
        elif self.sleeping and not self.held:
            # A held mailbox is released by its own (awake) consumer, which
            # then looks at the user lane: waking it now would be for nothing.
            self._signal()

    def tell(self, message: Any, /) -> bool:
        """Queue a user message without a reply; False if closed (nothing queued).

        The fast lane of ``ref.tell``: the bare message is queued. A control
        message (or an ``Envelope``) still goes through :meth:`put`.
        """
        if self._closed:
            return False
        kind = type(message)
        if kind is Envelope or kind is _ActorStop or isinstance(message, ControlMessage):
            self.put(Envelope(message))
            return True
        self._user.append(message)
        if self._closed:
            self._drain_dead()  # as in put: the actor stopped while we appended
        elif self.sleeping and not self.held:  # as in put
            self._signal()
        return True

    def _signal(self) -> None:
        # An unlocked lock is a wake-up already pending (the consumer has not
        # taken it yet): nothing to do. Most signals of a busy actor find
        # one, and asking is far cheaper than the RuntimeError below.
        if not self._wake.locked():
            return
        # Releasing an already released lock (another producer was first)
        # raises RuntimeError: a wake-up is then pending too.
        try:
            self._wake.release()
        except RuntimeError:
            return

    # -- consumer (the actor's thread only) -------------------------------
    def get(self) -> Envelope[Any]:
        """Block until a deliverable envelope is there and return it.

        ``processed`` counts what ``get`` returns (not what :meth:`lanes`
        consumers pop): every sleep ends in a ``get`` that returns, which
        is all ``settle`` needs to see that an actor did something.
        """
        control, user = self._control, self._user
        while True:
            if control:
                self.processed += 1
                return control.popleft()
            if user and not self.held:
                self.processed += 1
                item = user.popleft()
                return item if type(item) is Envelope else Envelope(item)
            self.sleeping = True
            # Re-check after announcing sleep: a producer that appended before
            # seeing ``sleeping`` is caught here, one that appends after it
            # will signal.
            if control or (user and not self.held):
                self.sleeping = False
                continue
            if self.on_sleep is not None:
                self.on_sleep()
            self._wake.acquire()
            self.sleeping = False

    def lanes(self) -> tuple[deque[Envelope[Any]], deque[Any]]:
        """The control and user lanes, for a consumer's hot loop (the actor's thread).

        The consumer may pop the user lane's next item itself while the
        control lane is empty and the mailbox not ``held``; an item is a
        bare message (a tell) unless its type is exactly ``Envelope``.
        Never a control message (``put`` sorts those into the other lane).
        """
        return self._control, self._user

    def empty(self) -> bool:
        """True when neither lane holds anything (Pykka's inbox protocol)."""
        return not self._control and not self._user

    def hold(self) -> None:
        """Stop delivering user messages (they stay queued, in order)."""
        self.held = True

    def release(self) -> None:
        """Deliver user messages again. Called on the actor's own thread."""
        self.held = False

    def runnable(self) -> bool:
        """True if ``get`` would return something right now."""
        return bool(self._control) or (bool(self._user) and not self.held)

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
        self.held = True
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
                    item = lane.popleft()
                except IndexError:  # another thread took the last one
                    break
                dead(item if type(item) is Envelope else Envelope(item))

    def __len__(self) -> int:
        return len(self._control) + len(self._user)
