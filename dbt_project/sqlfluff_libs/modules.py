"""dbt's ``modules`` context for sqlfluff's jinja templater: the macros use ``modules.re``."""

import datetime
import re

__all__ = ["datetime", "re"]
