"""The `langtrainer` command line (installed as `langtrainer.cli`)."""
