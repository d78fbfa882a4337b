"""The workbench's panels, one per file: each holds view state only, renders what the
controller tells it, and forwards its clicks to the controller (through the callables it is
given). No panel calls the session or writes another panel's widgets.

error browser · target picker · edit panel · outcome card · metrics · attribution view ·
generalization probe · "Where is it stored?" · history (save, export, report) · upload ·
the comparison's verdict line.
"""
