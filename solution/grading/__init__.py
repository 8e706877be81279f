"""The instructor's grader: graded cases run in a sandbox, judged by a process that never imports them.

Not shipped in a candidate's bundle.  See ``docs/grading.md``.
"""
