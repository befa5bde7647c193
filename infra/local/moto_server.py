"""moto's server for the local stack, with two changes to DynamoDB: requests are applied
one at a time, and a transaction is rolled back by index.

**One at a time.** DynamoDB applies a conditional write atomically: of eight concurrent
UpdateItems that each take a lease "if no one holds it", exactly one succeeds
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html).
moto 5.2.5 serves each request on its own thread (werkzeug `threaded=True`) and checks a
condition and applies the write without a lock, so two of those eight could both succeed
(15 rounds in 200 with eight threads on this machine): calsync's leases (sync runs, token
refreshes) would then admit two holders on the local stack only. Here each DynamoDB request
runs under one lock, which gives DynamoDB's atomicity per item (and more: one order for
every request).

**Rollback by index.**
moto 5.2.5 (`moto/dynamodb/models/__init__.py`, `transact_write_items`) deep-copies every
table a TransactWriteItems touches before applying it, so that a failed condition can put
the tables back: O(table) per request, about 2 s with the bench's tables, where DynamoDB
answers in milliseconds. Here that copy is the table's item index instead (the same item
objects, a new index), which restores the same state: moto's Put replaces an item object
and Delete removes it, neither changes one in place. A transaction with an Update keeps
moto's deep copy (moto updates items in place). The conditions, cancellation reasons and
every other behaviour are moto's own.
"""

import copy
import sys
import threading

from moto.dynamodb import models
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_deepcopy = copy.deepcopy
_state = threading.local()


class _CopyModule:
    """`copy` as moto's DynamoDB models see it: tables copied by index during a transaction
    without Update actions, everything else as `copy` does."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(x, memo=None):
        if getattr(_state, "by_index", False) and isinstance(x, Table):
            t = copy.copy(x)
            t.items = copy.copy(x.items)
            for key, value in x.items.items():
                if isinstance(value, dict):
                    t.items[key] = dict(value)
            return t
        return _deepcopy(x, memo)


models.copy = _CopyModule()
_transact_write_items = models.DynamoDBBackend.transact_write_items


def transact_write_items(self, transact_items):
    _state.by_index = all("Update" not in item for item in transact_items)
    try:
        return _transact_write_items(self, transact_items)
    finally:
        _state.by_index = False


models.DynamoDBBackend.transact_write_items = transact_write_items

_one_at_a_time = threading.Lock()
_call_action = DynamoHandler.call_action


def call_action(self):
    with _one_at_a_time:
        return _call_action(self)


DynamoHandler.call_action = call_action

if __name__ == "__main__":
    sys.exit(main())
