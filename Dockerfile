# Multi-stage build of a small static OrderSystem image.
#   docker build -t ordersystem:local .
FROM golang:1.26-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/ordersystem ./cmd/ordersystem

FROM scratch
COPY --from=build /out/ordersystem /ordersystem
# CA certificates, for rediss:// and tls:// backends and OTLP over TLS.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# Unprivileged and numeric (scratch has no /etc/passwd), so that Kubernetes'
# runAsNonRoot can check it; configs/k8s/ordersystem.yaml runs as the same.
USER 65532:65532
EXPOSE 5000 6000
ENTRYPOINT ["/ordersystem"]
