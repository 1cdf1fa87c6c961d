# The web service and its sidecar, as a Consul agent loads them from /etc/consul.d/web.hcl.
# web calls api through its sidecar: the upstream listener on 127.0.0.1:9191 dials api's sidecar over
# mTLS. The sidecar's ID (web-sidecar-proxy), its port (the first free one in 21000-21255), its local app
# address (127.0.0.1:8080) and its checks (TCP on the sidecar port, alias of web) are Consul's defaults.
service {
  name = "web"
  id   = "web"
  port = 8080

  check {
    id       = "web-http"
    name     = "web answers HTTP"
    http     = "http://127.0.0.1:8080/health"
    interval = "10s"
    timeout  = "1s"
  }

  connect {
    sidecar_service {
      proxy {
        upstreams = [
          {
            destination_name = "api"
            local_bind_port  = 9191
          }
        ]
      }
    }
  }
}
