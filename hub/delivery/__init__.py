"""The delivery layer, shared by every destination: rate governor, governed HTTP transport,
batching, write receipts and the auth pause. Nothing here lives inside an adapter."""
