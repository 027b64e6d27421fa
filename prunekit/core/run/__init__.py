"""One run from validation to its summary. :mod:`.runner` orchestrates (``run``, ``resume``);
:mod:`.validation` checks the settings, :mod:`.building` makes the parts, :mod:`.context` bundles
them, :mod:`.epochs` loops, :mod:`.trackers` feeds trackers, :mod:`.summary` and :mod:`.failure`
record the end, :mod:`.resume` reopens a stopped run, :mod:`.launch` starts one under torchrun,
:mod:`.environment` records where it ran."""
