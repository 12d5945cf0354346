"""Use cases shared by the API and the CLI: keys, credits, task submission."""

from upres.services.credits import CreditService
from upres.services.keys import KeyService
from upres.services.tasks import Submission, TaskService

__all__ = ["CreditService", "KeyService", "Submission", "TaskService"]
