"""What an admin or a subscriber does, one module each: the functions the shells (the CLI, the web
app, the scheduler, the demo) call.

Each use case reads what its stages need from the store and the ledger, hands plain records to the
pure stages (planning, ranking, rendering) and writes what they decide through the ledger. No ORM
row and no open session leaves a use case. Each module imports only what it uses; which shell may
call which use case is in tests/test_layout.py.
"""
