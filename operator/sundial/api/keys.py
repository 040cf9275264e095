"""The names Sundial's API is known by, defined once: group, version, kind, and the keys of its labels and
annotations on the Jobs it creates and on the objects users write."""

from __future__ import annotations

GROUP = "sundial.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ScheduledDeployment"
PLURAL = "scheduleddeployments"
SINGULAR = "scheduleddeployment"
SHORT_NAME = "sdep"

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "sundial"
SUNDIAL_KEY_PREFIX = "sundial.dev/"
"""Label and annotation keys with this prefix are Sundial's alone. (Subdomains such as
``local-cluster.sundial.dev/`` are not: they name other tools of the project, like the test cluster's.)"""
LABEL_OWNER = "sundial.dev/scheduled-deployment"
"""The owner's name, shortened by `sundial.decide.jobs.owner_label_value` when it is longer than a label
value may be; the operator reads the owner from the Job's controller ownerReference, the label is for
selecting."""
LABEL_ROLE = "sundial.dev/role"
LABEL_MANUAL = "sundial.dev/manual"
"""``"true"`` on the Job of a manual run, so ``kubectl get jobs -l sundial.dev/manual=true`` lists them."""
ANNOTATION_SCHEDULED = "sundial.dev/scheduled-time"
ANNOTATION_LOCAL = "sundial.dev/local-time"
ANNOTATION_TIME_ZONE = "sundial.dev/time-zone"
ANNOTATION_FIRED = "sundial.dev/fired-time"
ANNOTATION_TRIGGER = "sundial.dev/trigger"
"""On a ScheduledDeployment: a manual trigger request, written by the user (see `sundial.api.trigger`). On a
Job: the request the Job serves."""
ANNOTATION_OVERRIDE_FREEZE = "sundial.dev/override-freeze"
"""On a ScheduledDeployment: the trigger request (the same value as ``sundial.dev/trigger``) that may run
although a release freeze is on (``kubectl sundial trigger --override-freeze``). On the Job of such a run:
the freezes it overrode, so the exception stays on record."""
ANNOTATION_APPROVED_BY = "sundial.dev/approved-by"
"""On the Job of a run that needed approval: who approved it, in which DeploymentApproval."""
