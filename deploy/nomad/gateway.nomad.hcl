# The toolmesh gateway on Nomad: the whole mesh as one MCP server (/mcp, /ui, /a2a/<agent>).
#
#   nomad var put nomad/jobs mesh_token=... gateway_token=...    # see docs/deployment.md#nomad
#   nomad job run -var image=registry.example.com/toolmesh:0.1.0 -var allowed_hosts=mesh.example.com deploy/nomad/gateway.nomad.hcl
#
# The gateway does not register itself in Consul: the `service` block below is its only
# registration ("toolmesh-gateway"), which a load balancer that reads Consul (Traefik, Fabio,
# consul-template + HAProxy) routes to. It finds the agents through the Consul client agent on
# its Nomad client, and calls each with that agent's credential derived from MESH_TOKEN; clients
# present gateway_token (MESH_GATEWAY_TOKEN) if set, else mesh_token.

variable "image" {
  description = "The toolmesh image, built from the repository's Dockerfile."
  type        = string
  default     = "toolmesh:0.1.0"
}

variable "replicas" {
  description = "Replicas of the gateway; spread over the clients."
  type        = number
  default     = 2
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "consul_addr" {
  description = "The Consul client agent on each Nomad client, as the task sees it (host networking: the host's loopback)."
  type        = string
  default     = "http://127.0.0.1:8500"
}

variable "allowed_hosts" {
  description = "Host names clients use for the gateway (the load balancer's, e.g. mesh.example.com), comma-separated: DNS-rebinding protection refuses others."
  type        = string
  default     = ""
}

variable "failover_dcs" {
  description = "Consul datacenters that read-only calls from this agent may go to when this one has no healthy instance (MESH_FAILOVER_DCS). Empty: none."
  type        = string
  default     = ""
}

job "toolmesh-gateway" {
  datacenters = var.datacenters
  type        = "service"

  update {
    max_parallel     = 1
    health_check     = "checks"
    min_healthy_time = "5s"
    healthy_deadline = "3m"
    auto_revert      = true
  }

  group "gateway" {
    count = var.replicas

    # One replica per client where there are enough of them: a lost host costs one replica.
    spread {
      attribute = "${node.unique.id}"
    }

    network {
      mode = "host"
      port "http" {}
    }

    service {
      provider = "consul"
      name     = "toolmesh-gateway"
      port     = "http"
      tags     = ["toolmesh", "nomad", "gateway"]

      check {
        name     = "gateway /healthz"
        type     = "http"
        path     = "/healthz"
        interval = "5s"
        timeout  = "2s"

        check_restart {
          limit = 3
          grace = "60s"
        }
      }
    }

    task "gateway" {
      driver = "docker"

      config {
        image        = var.image
        network_mode = "host"
        args         = ["gateway", "--host", "${NOMAD_IP_http}", "--port", "${NOMAD_PORT_http}"]
      }

      env {
        CONSUL_HTTP_ADDR   = var.consul_addr
        MESH_FAILOVER_DCS  = var.failover_dcs
        MESH_ALLOWED_HOSTS = var.allowed_hosts
        MESH_LOG_LEVEL     = "info"
      }

      # The mesh's tokens from a Nomad variable every job of the namespace may read; the task
      # does not start without mesh_token (closed by default).
      template {
        destination = "${NOMAD_SECRETS_DIR}/mesh.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs" }}
          MESH_TOKEN={{ .mesh_token }}
          {{ with .metrics_token }}MESH_METRICS_TOKEN={{ . }}{{ end }}
          {{ with .gateway_token }}MESH_GATEWAY_TOKEN={{ . }}{{ end }}
          {{ end }}
        EOT
      }

      # SIGTERM closes the gateway's sessions and its connections to the agents.
      kill_signal  = "SIGTERM"
      kill_timeout = "20s"

      # Each process idles at about 200-220 MB RSS; Nomad kills a task past its memory.
      resources {
        cpu    = 200
        memory = 768
      }
    }
  }
}
