# toolmesh "knowledge" on Nomad: the knowledge specialist: handbook search.
#
#   nomad var put nomad/jobs mesh_token="$(openssl rand -hex 32)"   # once per namespace (see docs/deployment.md#nomad)
#   nomad job run -var image=registry.example.com/toolmesh:0.1.0 deploy/nomad/knowledge.nomad.hcl
#
# Every Nomad client runs a Consul client agent (the standard Nomad + Consul set-up). Each
# replica registers itself with that agent as service "knowledge" (tag mcp, its tools hash in meta,
# instance id knowledge-<host>-<port>): that registration is what callers use. The `service`
# block below is Nomad's own, under another name ("toolmesh-knowledge", no mcp tag, so the mesh
# never mistakes it for a member): it gates deployments on /healthz and restarts a replica
# that stops answering.

variable "image" {
  description = "The toolmesh image, built from the repository's Dockerfile."
  type        = string
  default     = "toolmesh:0.1.0"
}

variable "replicas" {
  description = "Replicas of knowledge; spread over the clients."
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

variable "failover_dcs" {
  description = "Consul datacenters that read-only calls from this agent may go to when this one has no healthy instance (MESH_FAILOVER_DCS). Empty: none."
  type        = string
  default     = ""
}

job "toolmesh-knowledge" {
  datacenters = var.datacenters
  type        = "service"

  update {
    max_parallel     = 1
    health_check     = "checks"
    min_healthy_time = "5s"
    healthy_deadline = "3m"
    auto_revert      = true
  }

  group "knowledge" {
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
      name     = "toolmesh-knowledge"
      port     = "http"
      tags     = ["toolmesh", "nomad"]

      check {
        name     = "knowledge /healthz"
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

    task "knowledge" {
      driver = "docker"

      config {
        image        = var.image
        network_mode = "host"
        args         = ["serve", "knowledge"]
      }

      env {
        # Bind and advertise the client's address on the port Nomad picked: Consul's check and
        # the callers on other hosts reach the replica there.
        MESH_HOST           = "${NOMAD_IP_http}"
        MESH_PORT           = "${NOMAD_PORT_http}"
        MESH_ADVERTISE_HOST = "${NOMAD_IP_http}"
        CONSUL_HTTP_ADDR    = var.consul_addr
        MESH_FAILOVER_DCS   = var.failover_dcs
        MESH_LOG_LEVEL      = "info"
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
          {{ end }}
        EOT
      }

      # SIGTERM drains in-flight calls (up to 15 s) and deregisters before the process exits.
      kill_signal  = "SIGTERM"
      kill_timeout = "20s"

      # Each process idles at about 200-220 MB RSS; Nomad kills a task past its memory.
      resources {
        cpu    = 300
        memory = 512
      }
    }
  }
}
