"""opmlc runtime: the target machine and everything a verifier node needs.

The ISA table (``isa``), the state encoding (``state``), Merkle memory
(``merkle``), the reference stepper (``stepper``) and the assembler (``asm``).
This package never imports the compiler (``opmlc``).
"""
