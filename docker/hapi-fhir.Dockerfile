# HAPI FHIR JPA server as a country's national FHIR server in docker-compose.yml. The upstream
# image is distroless (no shell, curl or wget), so a static busybox is added for the health check
# on /fhir/metadata; nothing else changes.
FROM busybox:1.36.1-musl AS busybox
FROM hapiproject/hapi:latest
COPY --from=busybox /bin/busybox /usr/local/bin/busybox
