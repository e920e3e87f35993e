"""The two-lane mailbox: ordering, control priority, hold/release, closing."""

from __future__ import annotations

import threading
from typing import Any

from regisseur.actors._pykka import Envelope
from regisseur.actors.mailbox import ControlMessage, Mailbox


class _Ctl(ControlMessage):
    __slots__ = ("tag",)

    def __init__(self, tag: str) -> None:
        self.tag = tag


def _msg(box: Mailbox) -> Any:
    return box.get().message


def test_user_messages_wait_while_held_and_keep_their_order() -> None:
    box = Mailbox()  # held until the actor starts
    for i in range(3):
        box.put(Envelope(i))
    assert not box.runnable()
    box.release()
    assert [_msg(box) for _ in range(3)] == [0, 1, 2]


def test_control_messages_overtake_user_messages_even_when_held() -> None:
    box = Mailbox()
    box.release()
    box.put(Envelope("a"))
    box.put(Envelope("b"))
    box.put(Envelope(_Ctl("stop")))
    first = _msg(box)
    assert isinstance(first, _Ctl)
    assert first.tag == "stop"
    box.hold()
    box.put(Envelope(_Ctl("restart")))
    assert _msg(box).tag == "restart"
    assert not box.runnable()  # "a" and "b" are kept back while held
    box.release()
    assert [_msg(box), _msg(box)] == ["a", "b"]


def test_a_sleeping_consumer_is_woken_by_a_producer() -> None:
    box = Mailbox()
    box.release()
    got: list[Any] = []
    done = threading.Event()

    def consume() -> None:
        got.append(_msg(box))
        done.set()

    thread = threading.Thread(target=consume)
    thread.start()
    box.put(Envelope("hello"))
    assert done.wait(5)
    thread.join(5)
    assert got == ["hello"]


def test_many_producers_lose_nothing() -> None:
    box = Mailbox()
    box.release()
    per_thread, threads = 5_000, 4

    def produce(offset: int) -> None:
        for i in range(per_thread):
            box.put(Envelope(offset + i))

    workers = [threading.Thread(target=produce, args=(n * per_thread,)) for n in range(threads)]
    received: list[int] = []

    def consume() -> None:
        for _ in range(per_thread * threads):
            received.append(_msg(box))

    consumer = threading.Thread(target=consume)
    consumer.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join(10)
    consumer.join(10)
    assert not consumer.is_alive()
    assert sorted(received) == list(range(per_thread * threads))
    # each producer's messages arrive in the order it sent them
    for n in range(threads):
        mine = [r for r in received if n * per_thread <= r < (n + 1) * per_thread]
        assert mine == sorted(mine)


def test_close_hands_every_queued_and_late_envelope_to_the_dead_handler() -> None:
    box = Mailbox()
    box.put(Envelope("queued"))
    dead: list[Any] = []
    box.close(lambda env: dead.append(env.message))
    assert dead == ["queued"]
    box.put(Envelope("late"))
    assert dead == ["queued", "late"]
    assert box.empty()


def test_idle_means_asleep_with_nothing_deliverable() -> None:
    box = Mailbox()
    box.release()
    assert not box.idle()  # not asleep yet
    box.sleeping = True
    assert box.idle()
    box.put(Envelope("x"))
    assert not box.idle()


def test_a_message_for_a_held_mailbox_does_not_wake_its_sleeping_consumer() -> None:
    woken: list[str] = []

    class Recording(Mailbox):
        __slots__ = ()

        def _signal(self) -> None:
            woken.append("woken")
            super()._signal()

    box = Recording()  # held, as while a failed actor waits for its supervisor
    box.sleeping = True
    box.put(Envelope("ask after the crash"))
    assert box.tell("tell after the crash")
    assert woken == []  # nothing it could deliver: its own release reads the lane
    box.put(Envelope(_Ctl("restart")))
    assert woken == ["woken"]  # control is always delivered
    box.release()
    box.sleeping = True
    assert box.tell("later")
    assert woken == ["woken", "woken"]


def test_told_messages_arrive_in_order_with_put_ones_and_envelopes_stay_intact() -> None:
    box = Mailbox()
    box.release()
    inner = Envelope("inside")
    assert box.tell("a")
    box.put(Envelope("b"))
    assert box.tell(inner)  # a message that is itself an envelope
    got = [box.get() for _ in range(3)]
    assert [e.message for e in got] == ["a", "b", inner]
    assert all(e.reply_to is None for e in got)


def test_tell_refuses_a_closed_mailbox_and_late_tells_become_dead_letters() -> None:
    box = Mailbox()
    assert box.tell("queued")
    dead: list[Any] = []
    box.close(lambda env: dead.append(env.message))
    assert dead == ["queued"]  # handed over as an envelope, like a put one
    assert not box.tell("late")
    assert dead == ["queued"]
