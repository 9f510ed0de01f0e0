package redis

// Key returns the stream key (for tests that read the stream directly).
func (t *Transport) Key() string { return t.opts.Key }
