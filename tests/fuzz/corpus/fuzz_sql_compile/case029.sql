SELECT topic(2) as device_id, 
    temperature as reported_temperature, 
    30 as max_temperature 
  FROM 'device/+/data' 
  WHERE temperature > 30