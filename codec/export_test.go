package codec

// DecodeHeadFast and DecodeHeadProto are DecodeHead's two ways, for the
// tests that compare them.
var (
	DecodeHeadFast  = decodeHeadFast
	DecodeHeadProto = decodeHeadProto
)
