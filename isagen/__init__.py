"""opmlc isagen: the generators that consume the ISA table (``opmlc_runtime.isa``).

* :mod:`~opmlc_isagen.solidity` renders the Solidity one-step verifier from the
  template ``contracts/OpmlcStep.sol.in`` into ``contracts/generated/OpmlcStep.sol``;
* :mod:`~opmlc_isagen.solc` compiles Solidity with the pinned compiler (npm ``solc``);
* :mod:`~opmlc_isagen.isadoc` renders the generated tables of ``spec/ISA.md``.

``python -m opmlc_isagen`` regenerates both committed outputs; ``--check`` only reports
drift (exit 1). This package imports the runtime (``opmlc_runtime``) and nothing of
the compiler (``opmlc``); the runtime imports nothing of it.
"""
