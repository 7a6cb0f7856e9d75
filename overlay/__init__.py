"""moodcast overlay: the aiohttp app (overlay pages, dashboard, REST API, socket.io) and OBS control."""
