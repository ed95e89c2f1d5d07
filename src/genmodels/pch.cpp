// Anchor for the shared precompiled header (see pch.h).
