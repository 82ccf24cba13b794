# The shared metadata database of a deployment of many hosts (metadata.url): RDS for PostgreSQL,
# reachable from the deployment's subnets only, TLS required, encrypted, backed up daily with
# point-in-time recovery; its master password kept by RDS in Secrets Manager.

resource "aws_db_subnet_group" "metadata" {
  name       = "${local.prefix}metadata"
  subnet_ids = var.database_subnet_ids
}

resource "aws_security_group" "metadata" {
  name        = "${local.prefix}metadata"
  description = "PostgreSQL from the DSS components"
  vpc_id      = var.vpc_id
  ingress {
    description = "PostgreSQL"
    from_port   = 5432
    to_port     = 5432
    protocol    = "tcp"
    cidr_blocks = var.database_client_cidrs
  }
}

# Clients must use TLS (sslmode=require in metadata.url; metadata.ca_file = the RDS CA bundle).
resource "aws_db_parameter_group" "metadata" {
  name   = "${local.prefix}metadata"
  family = "postgres15"
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
}

resource "aws_db_instance" "metadata" {
  identifier                  = "${local.prefix}metadata"
  engine                      = "postgres"
  engine_version              = "15"
  instance_class              = var.database_instance_class
  allocated_storage           = var.database_storage_gb
  max_allocated_storage       = var.database_storage_gb * 4
  storage_encrypted           = true
  db_name                     = "dss"
  username                    = "dss"
  manage_master_user_password = true
  db_subnet_group_name        = aws_db_subnet_group.metadata.name
  vpc_security_group_ids      = [aws_security_group.metadata.id]
  parameter_group_name        = aws_db_parameter_group.metadata.name
  multi_az                    = var.database_multi_az
  backup_retention_period     = 14
  deletion_protection         = true
  copy_tags_to_snapshot       = true
  final_snapshot_identifier   = "${local.prefix}metadata-final"
  auto_minor_version_upgrade  = true
}

# Every component reads the password (PGPASSWORD) from the secret RDS keeps.
data "aws_iam_policy_document" "metadata_password" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_db_instance.metadata.master_user_secret[0].secret_arn]
  }
}

resource "aws_iam_role_policy" "metadata_password" {
  for_each = aws_iam_role.component
  name     = "metadata-password"
  role     = each.value.id
  policy   = data.aws_iam_policy_document.metadata_password.json
}
