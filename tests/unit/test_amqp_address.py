"""A broker address of several URLs (a RabbitMQ cluster) and the queue type it implies."""

from __future__ import annotations

import pytest

from wharf.amqp import (
    CLASSIC,
    QUORUM,
    broker_urls,
    login,
    node_queue_declarations,
    passive,
    queue_type,
    safe_url,
    topology_declarations,
    with_queue_type,
)
from wharf.errors import InvalidArgument

THREE = ("amqp://wharf-gateway:s3cret@127.0.0.1:5701/wharf, "
         "amqp://wharf-gateway:s3cret@127.0.0.1:5702/wharf,"
         "amqp://wharf-gateway:s3cret@127.0.0.1:5703/wharf")


def test_an_address_of_three_brokers_is_three_urls_and_quorum_queues() -> None:
    urls = broker_urls(THREE)
    assert [u.rsplit(":", 1)[1] for u in urls] == ["5701/wharf", "5702/wharf", "5703/wharf"]
    assert queue_type(urls) == QUORUM
    assert queue_type(broker_urls(urls[0])) == CLASSIC
    assert login(THREE) == "wharf-gateway"
    assert safe_url(THREE) == "127.0.0.1:5701/wharf,127.0.0.1:5702/wharf,127.0.0.1:5703/wharf"
    assert "s3cret" not in safe_url(THREE)


@pytest.mark.parametrize(("address", "words"), [
    ("", "separated by commas"),
    ("amqp://u:p@h:1/v,", "separated by commas"),
    ("http://u:p@h:1/v", "amqp:// or amqps://"),
    ("amqp://u:p@h:1/v,amqp://other:p@h:2/v", "same user"),
    ("amqp://u:p@h:1/v,amqp://u:p@h:2/w", "same vhost"),
    (",".join(["amqp://u:p@h:1/v"] * 17), "at most 16"),
    ("amqp://user-without-password@h:1/v", "USER:PASSWORD"),
])
def test_a_bad_address_is_refused_with_a_reason(address: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        broker_urls(address)


def test_a_password_is_not_shown_in_an_error() -> None:
    with pytest.raises(InvalidArgument) as caught:
        broker_urls("ftp://u:hunter2@h/v")
    assert "hunter2" not in str(caught.value)


def test_quorum_applies_to_durable_queues_only_and_classic_changes_nothing() -> None:
    declared = [*topology_declarations(), *node_queue_declarations("n1"),
                ("queue_declare", {"queue": "scratch", "exclusive": True})]
    assert with_queue_type(declared, CLASSIC) == declared
    quorum = with_queue_type(declared, QUORUM)
    typed = {kw["queue"]: (kw.get("arguments") or {}).get("x-queue-type")
             for method, kw in quorum if method == "queue_declare"}
    assert typed == {"wharf.cmd.expired": QUORUM, "wharf.cmd.n1": QUORUM,
                     "wharf.bcast.n1": QUORUM, "scratch": None}
    command = next(kw for m, kw in quorum if m == "queue_declare" and kw["queue"] == "wharf.cmd.n1")
    assert command["arguments"]["x-single-active-consumer"] is True  # the rest is kept
    assert with_queue_type(passive(node_queue_declarations("n1")), QUORUM) == \
        passive(node_queue_declarations("n1"))  # a check that they exist needs no type
    assert "x-queue-type" not in (node_queue_declarations("n1")[0][1]["arguments"])
