package codec

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// eventMetadataField is the field number of orderpb.Event.metadata.
const eventMetadataField = 5

// EventMetadata returns the metadata of an encoded orderpb.Event (its trace
// context) without decoding the rest of the event, or nil when it has none
// or the bytes are not an event. The outbox reads it to continue each
// event's trace when it publishes.
func EventMetadata(data []byte) *orderpb.EventMetadata {
	var meta *orderpb.EventMetadata
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return nil
		}
		data = data[n:]
		if num == eventMetadataField && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(data)
			if n < 0 {
				return nil
			}
			// A repeated non-repeated message field merges, as
			// proto.Unmarshal does.
			if meta == nil {
				meta = &orderpb.EventMetadata{}
			}
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, meta); err != nil {
				return nil
			}
			data = data[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, data)
		if n < 0 {
			return nil
		}
		data = data[n:]
	}
	return meta
}
