def lambda_handler(event, context):  # placeholder for a local sam build
    return {}
