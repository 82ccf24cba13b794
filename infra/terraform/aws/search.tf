# The search cluster (search.url), as the original's infra/elasticsearch component: an Amazon
# OpenSearch Service domain inside the deployment's VPC, HTTPS only, encrypted at rest and between
# nodes. Only the components' roles may call it, with SigV4-signed requests
# (search.aws_sigv4 = true in the configuration; outputs search_url).

data "aws_caller_identity" "current" {}

resource "aws_security_group" "search" {
  name        = "${local.prefix}search"
  description = "HTTPS to the search cluster from the DSS components"
  vpc_id      = var.vpc_id
  ingress {
    description = "HTTPS"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = var.database_client_cidrs
  }
}

data "aws_iam_policy_document" "search_access" {
  statement {
    principals {
      type        = "AWS"
      identifiers = [for r in aws_iam_role.component : r.arn]
    }
    actions   = ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut", "es:ESHttpDelete"]
    resources = ["arn:aws:es:${var.region}:${data.aws_caller_identity.current.account_id}:domain/${local.prefix}search/*"]
  }
}

resource "aws_opensearch_domain" "search" {
  domain_name    = "${local.prefix}search"
  engine_version = var.search_engine_version

  cluster_config {
    instance_type          = var.search_instance_type
    instance_count         = var.search_instance_count
    zone_awareness_enabled = var.search_instance_count > 1
    dynamic "zone_awareness_config" {
      for_each = var.search_instance_count > 1 ? [1] : []
      content {
        availability_zone_count = 2
      }
    }
  }

  ebs_options {
    ebs_enabled = true
    volume_type = "gp3"
    volume_size = var.search_volume_gb
  }

  vpc_options {
    subnet_ids         = slice(var.database_subnet_ids, 0, var.search_instance_count > 1 ? 2 : 1)
    security_group_ids = [aws_security_group.search.id]
  }

  encrypt_at_rest {
    enabled = true
  }

  node_to_node_encryption {
    enabled = true
  }

  domain_endpoint_options {
    enforce_https       = true
    tls_security_policy = "Policy-Min-TLS-1-2-2019-07"
  }

  # The adapter's _bulk requests name each document's index in its action line.
  advanced_options = {
    "rest.action.multi.allow_explicit_index" = "true"
  }

  access_policies = data.aws_iam_policy_document.search_access.json
}
