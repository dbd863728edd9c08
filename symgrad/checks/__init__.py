"""CHECK: one sampling and tolerance policy (``sampling``), the numeric cross-check of a symbolic
result (``crosscheck``) and the gradient checker for user code (``gradcheck``).

Nothing is imported here: ``gradcheck`` (the pytest plugin's checker) must load without SymPy."""
