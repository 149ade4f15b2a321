"""Live talking without Qt: sound devices, jitter buffer, push-to-talk, recording, conversation.

``devices`` is the only module that touches sounddevice, and only when a device is listed or
opened, so this package imports on a machine without PortAudio.
"""
