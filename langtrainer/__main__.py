"""`python -m langtrainer ...` runs the command line (also what `accelerate launch -m langtrainer` starts)."""

from langtrainer.cli.main import main

main()
