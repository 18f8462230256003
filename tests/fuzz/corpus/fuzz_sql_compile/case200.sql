SET @threshold = 50
SELECT temp_fahrenheit FROM 'sensors/+' WHERE temp_fahrenheit > @threshold