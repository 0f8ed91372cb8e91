# mlwatch in a container: the binary only (server mode; the embedded engine
# needs libchdb.so, which the container does not ship).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -o /out/mlwatch ./cmd/mlwatch

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/mlwatch /usr/local/bin/mlwatch
COPY configs/example.yaml /etc/mlwatch/example.yaml
USER nobody
ENTRYPOINT ["/usr/local/bin/mlwatch"]
