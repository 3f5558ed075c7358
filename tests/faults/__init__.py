"""The fault suite (issue 7): full disks, read-only homes, SIGKILL, races, odd input, clocks.

Every case asserts docs/architecture.md §4 (Never): the host is neither blocked nor
crashed, nothing is silently lost, no partial file is visible, the user gets a clear
one-or-two sentence message without a traceback, and bad input leaves files
byte-for-byte as they were.
"""
