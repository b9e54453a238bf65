"""Messages the code shows through a variable, listed here so `pybabel extract` finds them.

Nothing imports this file; it only keeps these msgids in messages.pot (and so in every
catalog, where `pybabel update` would otherwise mark them obsolete).
"""
from loom.i18n import _

# history actions, shown by themes/*/templates/_history.html as `_(e.action)`
HISTORY_ACTIONS = (
    _("create"),
    _("update"),
    _("delete"),
    _("restore"),
    _("purge"),
    _("transition"),
    _("approve"),
    _("reject"),
    _("recall"),
    _("assign"),
    _("share"),
    _("merge"),
)

# approval and task statuses and workflow kinds, shown by the workflow templates as `_(f.status)`,
# `_(task.decision)` and `_(wf.kind)`
WORKFLOW_WORDS = (
    _("pending"),
    _("approved"),
    _("rejected"),
    _("recalled"),
    _("cancelled"),
    _("skipped"),
    _("lifecycle"),
    _("approval"),
)
