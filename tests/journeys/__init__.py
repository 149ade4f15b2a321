"""The journeys tier: the installed app, driven as a person drives it (see conftest.py).

1. test_first_launch.py   the welcome, its secret, and a welcome quit halfway
2. test_pages.py          every page and the Settings, from the keyboard
3. test_talk.py           a live conversation heard through the virtual sound card
4. test_recording.py      a recording that is true (its own journey; talking.py has the helpers)
5. test_offline.py        files dropped (XDND) or added, answered or refused
6. test_keys.py           a key made, used and revoked in the GUI
7. test_lan.py            serving the LAN and pairing a device by QR code
8. test_quit_and_return.py  quit from the menu and come back
Plus test_graceful_exit.py (signals with dialogs open) and test_gateway_command.py.
"""
