"""The report: the paper's Tables 2-4 and Figure 1, rebuilt from run outputs, for any labels,
languages, groups and setups.

One module per concern, in the order the work flows:

  collect.py     what finished runs left behind (typed readers of rundir / artifacts)
  setups.py      a run's training setup ("role") from its recipe, and its title
  statistics.py  means over seeds, standard errors, paired differences; the typed `Summary` (report.json)
  verdicts.py    the verdict lines: rules on the summary's numbers
  sections.py    report.md section by section
  paper.py       the paper's numbers, shown only beside a recipe's `paper_analogue`
  write.py       `write_report`: the files (report.md, report.json, figures, token views, model cards)

Verdicts are stated only as far as the numbers carry them: a difference
smaller than its uncertainty is reported as "not shown".
"""

from langtrainer.reporting.report.collect import Collected, Run, collect
from langtrainer.reporting.report.setups import role_of, role_title
from langtrainer.reporting.report.statistics import Summary, difference_verdict, summarise
from langtrainer.reporting.report.write import separating_c, write_report

__all__ = ["Collected", "Run", "Summary", "collect", "difference_verdict", "role_of", "role_title", "separating_c",
           "summarise", "write_report"]
