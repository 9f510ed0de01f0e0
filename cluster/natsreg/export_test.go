package natsreg

// Mode is the expiry mode in use (ModeKeyTTL or ModeBucketTTL).
func (r *Registry) Mode() Mode { return r.b.Load().mode }

// Bucket is the members' bucket.
func (r *Registry) Bucket() string { return r.bucket }
